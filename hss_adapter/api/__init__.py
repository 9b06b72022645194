"""Provisioning REST API (aiohttp): routes, request schemas, OpenAPI document."""
