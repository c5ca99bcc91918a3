#!/usr/bin/python3
"""Writes the checkpoints the nemo loader tests read, with real torch.save, plus what the loader
must find in them: <case>.expect (one line per tensor: name dtype storage_group ndim shape...) and
<case>.bin (each tensor's elements, row-major, concatenated in state-dict order).

Usage: make_fixtures.py OUTDIR
"""
import collections
import gzip
import io
import os
import struct
import sys
import tarfile
import zipfile

import torch

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(1234)

DT = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
      torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8",
      torch.bool: "bool"}


def expect(case, sd):
    """Expected table: storage groups are numbered by first appearance of each storage."""
    groups = {}
    with open(os.path.join(OUT, case + ".expect"), "w") as f, open(os.path.join(OUT, case + ".bin"), "wb") as b:
        for name, t in sd.items():
            key = t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.storage().data_ptr()
            g = groups.setdefault(key, len(groups))
            f.write("%s %s %d %d %s\n" % (name, DT[t.dtype], g, t.dim(), " ".join(str(s) for s in t.shape)))
            # raw bytes of the row-major contents (bf16 via an int16 view keeps the exact bits)
            c = t.detach().contiguous()
            if c.dtype == torch.bfloat16:
                c = c.view(torch.int16)
            b.write(c.numpy().tobytes())


class Tiny(torch.nn.Module):
    """A module with the features of a NeMo state dict: BatchNorm (0-d int64 num_batches_tracked),
    a tied embedding/head (one Parameter under two keys), nested module names."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(13, 8)
        self.conv = torch.nn.Conv1d(8, 8, 3, groups=8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.head = torch.nn.Linear(8, 13)
        self.head.weight = self.emb.weight


def basic_state_dict():
    m = Tiny()
    m.bn.running_mean.normal_()
    m.bn.num_batches_tracked.fill_(7)
    sd = m.state_dict()
    sd["extra.f16"] = torch.randn(3, 5).half()
    sd["extra.bf16"] = torch.randn(4, 6).bfloat16()
    sd["extra.f64"] = torch.randn(2, 3, dtype=torch.float64)
    sd["extra.i64"] = torch.arange(-5, 5, dtype=torch.int64)
    sd["extra.i32"] = torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3)
    sd["extra.i16"] = torch.tensor([-32768, 0, 32767], dtype=torch.int16)
    sd["extra.i8"] = torch.tensor([-128, 1, 127], dtype=torch.int8)
    sd["extra.u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["extra.bool"] = torch.tensor([True, False, True])
    sd["extra.scalar_f32"] = torch.tensor(3.5)
    sd["extra.empty"] = torch.zeros(0, 4)
    sd["extra.big_dims"] = torch.randn(1, 2, 1, 3, 1, 2)
    return sd


def views_state_dict():
    """Shared storage with offsets and non-contiguous strides."""
    base = torch.randn(6, 4)
    sd = collections.OrderedDict()
    sd["base"] = base
    sd["rows_2_to_5"] = base[2:5]          # offset 8, contiguous
    sd["transposed"] = base.t()            # strides (1, 4)
    sd["column_1"] = base[:, 1]            # offset 1, stride 4
    sd["every_other"] = base[::2, ::2]     # strides (8, 2)
    sd["scalar_view"] = base[3, 2]         # 0-d with offset 14
    return sd


def save(sd, path):
    torch.save(sd, path)


def nemo_tar(path, members, fmt=tarfile.PAX_FORMAT, gz=False):
    """members: list of (arcname, bytes). Like NeMo: './' prefix and a leading '.' directory."""
    mode = "w:gz" if gz else "w:"
    with tarfile.open(path, mode, format=fmt) as tar:
        d = tarfile.TarInfo(".")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        tar.addfile(d)
        for name, data in members:
            ti = tarfile.TarInfo("./" + name)
            ti.size = len(data)
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))


def rewrite_zip64(src, dst, align=64):
    """Re-writes a torch zip as a ZIP64 archive: every size and offset saturated to 0xFFFFFFFF with
    the real values in zip64 extra fields, plus the ZIP64 end records. Entries stored and aligned."""
    with zipfile.ZipFile(src) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        off = len(out)
        z64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        base = off + 30 + len(nb) + len(z64)
        pad = (-(base + 4)) % align
        fb = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        crc = zipfile.crc32(data) & 0xFFFFFFFF
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(nb), len(z64) + len(fb))
        out += nb + z64 + fb + data
        cz64 = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(nb), len(cz64), 0, 0, 0, 0, 0xFFFFFFFF)
        central += nb + cz64
    cd_off = len(out)
    out += central
    e64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries),
                       len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)


CONFIG = b"target: test\n"

# 1. basic: every dtype, BatchNorm, tied weights, _metadata; as written to model_weights.ckpt
sd = basic_state_dict()
expect("basic", sd)
save(sd, os.path.join(OUT, "model_weights.ckpt"))
ckpt = open(os.path.join(OUT, "model_weights.ckpt"), "rb").read()
os.rename(os.path.join(OUT, "model_weights.ckpt"), os.path.join(OUT, "basic.ckpt"))
members = [("model_config.yaml", CONFIG), ("model_weights.ckpt", ckpt),
           ("0123456789abcdef0123456789abcdef_tokenizer.model", b"not used here")]
nemo_tar(os.path.join(OUT, "basic.nemo"), members)
nemo_tar(os.path.join(OUT, "basic_gnu.nemo"), members, fmt=tarfile.GNU_FORMAT)
nemo_tar(os.path.join(OUT, "basic.nemo.gz"), members, gz=True)
d = os.path.join(OUT, "basic_dir")
os.makedirs(d, exist_ok=True)
for name, data in members:
    open(os.path.join(d, name), "wb").write(data)
# a long member name forces a PAX header (PAX format) or a GNU 'L' record (GNU format)
long_members = members + [("sub/" + "x" * 150 + "_vocab.txt", b"long name member")]
nemo_tar(os.path.join(OUT, "longname_pax.nemo"), long_members)
nemo_tar(os.path.join(OUT, "longname_gnu.nemo"), long_members, fmt=tarfile.GNU_FORMAT)

# 2. views on one storage; saved to a buffer (prefix "archive/")
sd = views_state_dict()
expect("views", sd)
buf = io.BytesIO()
torch.save(sd, buf)
open(os.path.join(OUT, "views.ckpt"), "wb").write(buf.getvalue())

# 3. a different archive prefix ("weights_v7/") and a ZIP64 rewrite of the basic checkpoint
save(basic_state_dict_copy := sd, os.path.join(OUT, "weights_v7.pt"))
expect("weights_v7", basic_state_dict_copy)
rewrite_zip64(os.path.join(OUT, "basic.ckpt"), os.path.join(OUT, "basic_zip64.ckpt"))

# 4. a pickle with a global no state dict has (must be refused, never run)
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + os.path.join(OUT, "PWNED"),))

buf = io.BytesIO()
torch.save(collections.OrderedDict(x=torch.zeros(2), evil=Evil()), buf)
open(os.path.join(OUT, "evil.ckpt"), "wb").write(buf.getvalue())

# 5. protocol 4 pickle (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
sd = views_state_dict()
expect("proto4", sd)
buf = io.BytesIO()
torch.save(sd, buf, pickle_protocol=4)
open(os.path.join(OUT, "proto4.ckpt"), "wb").write(buf.getvalue())

open(os.path.join(OUT, "DONE"), "w").write("ok\n")
