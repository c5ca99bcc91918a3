"""canary_ref: a compact PyTorch numerical reference for NVIDIA Canary inference (see docs/REFERENCE.md)."""
