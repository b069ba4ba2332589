"""Revisions of the scores database, oldest first by their ``down_revision`` chain."""
