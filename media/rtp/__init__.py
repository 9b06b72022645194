"""RTP (RFC 3550): sans-IO packet codec, receive statistics, RFC 4733 events, and the asyncio engine."""
