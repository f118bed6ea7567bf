"""Local infrastructure on loopback: a private PostgreSQL cluster and a single-node KRaft Kafka broker."""
