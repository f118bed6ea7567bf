"""The stateful Kafka consumer: features, scoring, effectively-once persistence, alerts."""
