"""Scheduled change sync: job descriptions, watermark/lock/run state, sinks, page steps."""
