"""mkwav.py PATH SECONDS [RATE] [BITS]: a silent mono PCM WAV (service tests; any rate works with
the test transcriber, so long audio can use a low rate to stay small)."""
import struct, sys
path, secs = sys.argv[1], float(sys.argv[2])
rate = int(sys.argv[3]) if len(sys.argv) > 3 else 16000
bits = int(sys.argv[4]) if len(sys.argv) > 4 else 16
n = int(round(secs * rate)) * (bits // 8)
with open(path, "wb") as f:
    f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE")
    f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * bits // 8, bits // 8, bits))
    f.write(b"data" + struct.pack("<I", n))
    f.write(b"\x80" * n if bits == 8 else b"\0" * n)
