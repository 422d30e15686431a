"""Vendor adapters that ship with Platypus, one folder per vendor.

Installed as the `platypus_adapters` package.
"""
