"""The GraphQL API (Strawberry) served by Litestar, and its plain HTTP endpoints."""
