nats-server -c /var/lib/perseus/labs/run-26612/n3/nats.conf
