#!/usr/bin/env bash
# Regenerates fixtures/messages/: messages published by a Python (pika) producer the way
# seed-era producers do, captured from a real RabbitMQ queue with `facerec capture`.
# Image bodies are small stand-ins (the face_recognition images are not ours to commit);
# the hashes are those of the recorded images, so replays with
# fixtures/encodings/face_recognition_test_images.json find their faces.
# Usage: scripts/make-message-fixtures.sh   (needs scripts/services.sh and python-env.sh)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"
queue="facerec-fixtures-$$"
out="fixtures/messages"
rm -rf "$out" && mkdir -p "$out"
"$FACEREC_VENV/bin/python" - "$queue" <<'PY'
import base64, json, sys
import pika
queue = sys.argv[1]
rec = json.load(open("fixtures/encodings/face_recognition_test_images.json"))
h = {i["name"]: i["hash"] for i in rec["images"]}
stand_in = lambda name: base64.b64encode(("stand-in for " + name).encode()).decode()
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
ch = conn.channel()
ch.queue_declare(queue, durable=True)
def send(body, headers=None):
    ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, headers=headers))
for name in ["obama.jpg", "obama2.jpg", "biden.jpg"]:
    send(json.dumps({"hash": h[name], "name": name, "image": stand_in(name)}))
send(json.dumps({"hash": h["obama3.jpg"], "name": "https://example.org/obama3.jpg", "image": {"py/b64": stand_in("obama3.jpg")}}))
send(b"stand-in for 32bit.png", {"hash": h["32bit.png"], "name": "uploads/32bit.png"})
send(json.dumps({"hash": h["obama.jpg"], "name": "copies/obama-again.jpg", "image": stand_in("obama.jpg")}))
send(b"{\"hash\": \"abc\", \"name\": ")
send(json.dumps({"hash": "abc", "image": stand_in("x")}))
send(json.dumps({"hash": "abc", "name": "n.jpg", "image": 42}))
send(b"\x89PNG but no name header")
conn.close()
PY
cargo run --quiet -- capture "$out" --from "$queue" --count 100 --remove
"$FACEREC_VENV/bin/python" -c "import pika,sys; c=pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1')); c.channel().queue_delete(sys.argv[1]); c.close()" "$queue"
ls "$out"
