"""Vendor adapters that ship with Platypus, one folder per vendor (installed as `platypus_adapters`)."""
