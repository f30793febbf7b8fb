nats-server -c /var/lib/perseus/labs/run-31916/n3/nats.conf
