"""Tests of the vendor adapters: a contract run against every adapter, plus each vendor's own."""
