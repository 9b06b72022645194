"""``python -m media.prompts --render``: render every catalogue prompt into ``[media] prompt_dir``.

The container image build runs it so that a fresh media pod plays every prompt at once. It reads the same
configuration as ``secondnum media`` (``--config`` TOML, ``SECONDNUM_MEDIA__*`` variables), so the cache keys
(engine, voice, language) are the ones the media server looks up. Exit status 0 when every prompt is in the
cache, 1 when synthesis failed, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from media.prompts.cache import PromptCache
from media.prompts.catalog import all_texts
from media.prompts.tts import TtsError
from media.service import make_engine, render_prompts
from media.settings import MediaSettings
from secondnum.config import ConfigError
from secondnum.log import setup_logging
from secondnum.service import Config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media.prompts", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--render", action="store_true", help="render the prompts not cached yet")
    parser.add_argument("-c", "--config", type=Path, default=None, help="TOML configuration file")
    args = parser.parse_args(argv)
    if not args.render:
        parser.error("nothing to do: pass --render")
    setup_logging("info", "kv")
    try:
        settings = Config.load(args.config).section(MediaSettings, "media")
    except ConfigError as exc:
        print(f"media.prompts: {exc}", file=sys.stderr)
        return 2
    cache = PromptCache(settings.prompt_dir, make_engine(settings))
    try:
        rendered = render_prompts(cache)
    except TtsError as exc:
        print(f"media.prompts: synthesis failed: {exc}", file=sys.stderr)
        return 1
    total = len(set(all_texts()))
    print(f"{total} prompts in {settings.prompt_dir} ({rendered} rendered now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
