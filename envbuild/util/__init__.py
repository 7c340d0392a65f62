"""Helpers with no conda concept: files, processes, locks, logging, progress, templates."""
