"""Frontends: readers that turn a framework's model file into rsim's Network IR."""
