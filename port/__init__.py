"""Port: a self-hosted, git-fed app store for containerised apps."""
