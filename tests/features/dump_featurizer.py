"""Writes a .nemo checkpoint's preprocessor.featurizer.fb and .window as raw float32 files, using
the reference's own loader (tests/reference/canary_ref/nemo.py), so the C golden test can build its
extractor from the same buffers as the goldens.

usage: dump_featurizer.py MODEL.nemo OUT_FB.f32 OUT_WINDOW.f32
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from canary_ref.nemo import NemoModel  # noqa: E402


def main():
    model, fb_out, win_out = sys.argv[1:4]
    state = NemoModel(model).state
    state["preprocessor.featurizer.fb"].float().numpy().astype("<f4").tofile(fb_out)
    state["preprocessor.featurizer.window"].float().numpy().astype("<f4").tofile(win_out)


if __name__ == "__main__":
    main()
