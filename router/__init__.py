"""The hub as an aiohttp service: ingress, delivery (push and pull), receipts, operations.

Start it with `smdo serve` (router.server) or embed `router.app.create_app(HubConfig(...))`.
"""
