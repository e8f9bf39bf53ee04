"""Helpers for tests: real servers, processes and browsers started on free loopback ports."""
