"""Incoming forge webhooks (GitHub, GitLab, Gitea/Forgejo): verify, find the repo, enqueue."""
