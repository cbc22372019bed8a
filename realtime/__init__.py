"""Shared Context Server: sessions, messages and live delivery on Django Channels."""
