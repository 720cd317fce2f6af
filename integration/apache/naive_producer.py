"""The pattern the relay replaces: kafka-python (Debian's python3-kafka,
the client of the article behind this project), send then flush for every
message, acks=all. Prints messages per second as JSON."""
import json
import sys
import time

from kafka import KafkaProducer

brokers, topic, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
producer = KafkaProducer(bootstrap_servers=brokers.split(","), acks="all")
value = b"x" * size
producer.send(topic, value)
producer.flush()
start = time.monotonic()
for i in range(n):
    producer.send(topic, value)
    producer.flush()
elapsed = time.monotonic() - start
producer.close()
print(json.dumps({"messages": n, "seconds": elapsed, "perSecond": n / elapsed}))
