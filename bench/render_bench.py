"""What rendering one message's HTML costs: ``python -m bench render [--repeat 2000] [--json]``.

Every message a page shows is built once by ``realtime.fragments.message_html``:
Markdown parsed (markdown-it-py), code highlighted (Pygments), sanitized (nh3), then
placed in the ``_message.html`` template. Live, ``realtime.live.delivery`` does that
once per event for all of a session's viewers, and encodes the frame once. This
times, in this process, for a few kinds of content: the Markdown step alone, the
whole fragment, the page frame's JSON, a fragment found in the cache (what a replay
or a first render of a recent message costs), against the plain envelope's JSON
(what a delivery cost before pages got HTML).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import summary_ms, table

ROOT = Path(__file__).resolve().parent.parent

PYTHON = "\n".join(f"def step_{n}(value):\n    return [value * {n} for _ in range({n})]  # step {n}"
                   for n in range(14))
SAMPLES = {
    "plain (120 chars)": "The build is green again; I moved the flaky test behind a retry and opened a ticket for it.",
    "markdown (600 chars)": (
        "## Plan for the migration\n\n1. **Freeze** writes on `billing` at 14:00\n2. Copy with `pg_dump`, see "
        "[the runbook](https://example.com/runbook)\n3. Switch the reads\n\n> Roll back if the error rate "
        "passes *1%*.\n\n| step | owner | done |\n|:--|:--|--:|\n| freeze | ada | yes |\n| copy | bob | no |\n\n"
        "- watch the dashboards\n- tell the team in #ops\n"),
    "code block (40 lines)": f"Here is the helper:\n\n```python\n{PYTHON}\n```\n",
    "large (10 KB)": ("Paragraph with **bold**, `code` and a [link](https://example.com/a). " * 60
                      + f"\n\n```python\n{PYTHON}\n```\n" + "\n- item" * 100),
}


def setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("SCS_DATA_DIR", tempfile.mkdtemp(prefix="scs-render-bench-"))
    os.environ.setdefault("SCS_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def timed(function, argument, repeat):
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(argument)
        samples.append(time.perf_counter() - start)
    return samples


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m bench render", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="renders of each sample (default 2000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args(argv)
    setup()
    from realtime import markdown
    from realtime.envelope import encode
    from realtime.fragments import build_message_html, message_html

    results = {}
    for name, content in SAMPLES.items():
        event = {"type": "new_message", "session_id": "session_0123456789abcdef", "seq": 42,
                 "data": {"id": 42, "sender": "ada", "sender_type": "claude", "content": content,
                          "visibility": "public", "metadata": {"step": 3}, "parent_message_id": None,
                          "timestamp": "2026-05-01T14:00:00.000000Z"}}
        message_html(event)  # warm: templates loaded, lexers found
        results[name] = {
            "chars": len(content),
            "markdown": summary_ms(timed(markdown.render, content, options.repeat)),
            "fragment": summary_ms(timed(build_message_html, event, options.repeat)),
            "cached": summary_ms(timed(message_html, event, options.repeat)),
            "page_frame": summary_ms(timed(lambda e: encode({**e, "html": build_message_html(e)}), event,
                                           options.repeat)),
            "envelope_only": summary_ms(timed(encode, event, options.repeat)),
        }
    if options.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{options.repeat} renders of each sample, one process (ms: p50 / p95)")
    rows = []
    for name, figures in results.items():
        rows.append([name, *(f"{figures[part]['p50']} / {figures[part]['p95']}"
                             for part in ("markdown", "fragment", "page_frame", "cached", "envelope_only"))])
    print(table(["content", "markdown", "fragment (li)", "page frame (json)", "fragment, cached", "envelope json"],
                rows))
    return 0
