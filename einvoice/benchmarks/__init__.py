"""Benchmarks that exercise the engine the way production does (``einvoice bench …``)."""
