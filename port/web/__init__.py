"""Port's own web pages (the storefront): server-rendered Jinja templates with htmx for
the live parts, on the assets of ``port.assets``. Pages call the same domain services and
permission rules as the GraphQL API; they know nothing the API does not."""
