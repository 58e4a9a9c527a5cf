"""Deployment: Setups become containers (Pods) on a backend. Selection comes first."""
