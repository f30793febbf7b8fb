nats-server -c /var/lib/perseus/labs/run-26236/n2/nats.conf
