"""``[media]`` settings: embedded loopback defaults, every value overridable (``SECONDNUM_MEDIA__KEY``)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Literal

from secondnum.sip.session_timer import ABSOLUTE_MIN_SE, TimerConfig
from secondnum.sip.transport import TcpLimits


@dataclasses.dataclass(frozen=True)
class MediaSettings:
    sip_host: str = "127.0.0.1"
    sip_port: int = 5070
    """UDP and TCP on the same port."""
    trusted_sources: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1"])
    """Source IPs allowed to send INVITEs (the AS); empty list = any (lab use only)."""
    rtp_host: str = "127.0.0.1"
    rtp_port_min: int = 20000
    rtp_port_max: int = 20999
    rtp_timeout: float = 30.0
    """Seconds without RTP from the caller (not on hold) before the call is ended with BYE."""
    rtcp_interval: float = 5.0
    """RFC 3550 §6.2 minimum RTCP report interval (each randomised to 0.5-1.5 times); keep the default 5 s."""
    api_host: str = "127.0.0.1"
    api_port: int = 8082
    api_tokens: list[str] = dataclasses.field(default_factory=list)
    max_calls: int = 500
    prompt_dir: Path = Path("var/prompts")
    tts_engine: Literal["espeak", "gtts"] = "espeak"
    espeak_voice: str = "en-us"
    espeak_speed: int = 150
    gtts_lang: str = "en"
    gtts_tld: str = "com"
    gtts_timeout: float = 5.0
    max_message_length: float = 180.0
    min_message_length: float = 1.0
    silence_timeout: float = 8.0
    silence_threshold: int = 300
    """RMS (16-bit scale) below which a 20 ms frame counts as silence."""
    max_greeting_length: float = 60.0
    max_messages: int = 100
    """Default mailbox capacity (a mailbox document may set its own)."""
    digit_timeout: float = 8.0
    """Seconds the menu waits for a key after a prompt before repeating it."""
    session_expires: int = 1800
    min_se: int = 90
    """RFC 4028 §5: the smallest session interval media accepts; a smaller Session-Expires gets ``422`` with
    ``Min-SE: min_se`` (§9). At least 90 s (§4: Min-SE MUST NOT be below 90 s)."""
    refer_timeout: float = 60.0
    refer_bye_timeout: float = 10.0
    store_lookup_timeout: float = 3.0
    """Seconds a call waits for its mailbox/account lookup before going on without the database."""
    spool_retry_interval: float = 2.0
    """Seconds between database checks while MongoDB is down or messages wait in the disk spool."""
    tcp_max_connections: int = 512
    """SIP over TCP: inbound connections from sources outside ``trusted_sources``, all together."""
    tcp_max_per_source: int = 8
    """SIP over TCP: inbound connections from one such source."""
    tcp_max_per_trusted_source: int = 256
    """SIP over TCP: inbound connections from one ``trusted_sources`` address (the AS), counted apart."""
    tcp_header_timeout: float = 10.0
    """SIP over TCP: seconds a connection may hold an incomplete message before it is closed; 0 disables."""

    @functools.cached_property
    def tcp_limits(self) -> TcpLimits:
        """The SIP-over-TCP connection caps as the transport takes them (as for the AS's ``[as]``)."""
        return TcpLimits(self.tcp_max_connections, self.tcp_max_per_source, self.tcp_max_per_trusted_source,
                         self.tcp_header_timeout)

    @functools.cached_property
    def timer_config(self) -> TimerConfig:
        """The session-timer limits as :mod:`secondnum.sip.session_timer` takes them (RFC 4028)."""
        return TimerConfig(self.session_expires, self.min_se)

    def __post_init__(self) -> None:
        _ = self.tcp_limits  # validates the caps at load time
        if not 1024 <= self.rtp_port_min <= self.rtp_port_max <= 65534:
            raise ValueError("rtp_port_min..rtp_port_max must be a range within 1024..65534")
        if self.rtp_port_min + (self.rtp_port_min & 1) + 1 > self.rtp_port_max:
            raise ValueError("rtp_port_min..rtp_port_max must hold an even RTP port and its RTCP port")
        if self.min_message_length < 0 or self.max_message_length <= self.min_message_length:
            raise ValueError("need 0 <= min_message_length < max_message_length")
        if self.min_se < ABSOLUTE_MIN_SE:
            raise ValueError(f"min_se must be at least {ABSOLUTE_MIN_SE} s (RFC 4028 §4)")
        for name in ("rtp_timeout", "silence_timeout", "gtts_timeout", "digit_timeout",
                     "store_lookup_timeout", "spool_retry_interval", "rtcp_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
