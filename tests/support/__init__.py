"""Helpers shared by test files: lead builders, metric scraping, free ports."""
