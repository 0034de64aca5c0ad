"""Compiling training programs for named Cloud TPU slices on any machine (libtpu's compile-only
devices): per-chip memory, collectives, FLOPs and attention kernels before a slice is booked."""
