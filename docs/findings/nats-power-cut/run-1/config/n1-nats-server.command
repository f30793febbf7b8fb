nats-server -c /var/lib/perseus/labs/run-26236/n1/nats.conf
