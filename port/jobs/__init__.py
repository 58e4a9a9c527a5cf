"""Durable jobs: index runs, updates and reconciles as rows that survive a crash."""
