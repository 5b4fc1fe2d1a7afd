"""The report's blocks written out: Markdown (charts as PNG links) and a standalone HTML page whose charts are drawn
by Vega-Embed, its JavaScript inlined so the page renders offline.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from analysis.report_blocks import Bold, Chart, Heading, Paragraph, Table, slug


def _md_cell(x: Any) -> str:
    text = str(x).replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if isinstance(x, Bold) and text else text


def render_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(c) for c in b.columns) + " |", "|" + "---|" * len(b.columns)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            if not b.rows:
                lines.append("| " + " | ".join("" for _ in b.columns) + " |")
            out.append("\n".join(lines))
            if b.caption:
                out.append(f"*{b.caption}*")
        elif isinstance(b, Chart):
            out.append(f"![{b.alt_text}]({b.name}.png)\n\n[SVG]({b.name}.svg)")
    return "\n\n".join(out) + "\n"


_INLINE_MD = [(re.compile(r"\*\*(.+?)\*\*"), r"<b>\1</b>"), (re.compile(r"`(.+?)`"), r"<code>\1</code>")]

HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
td.text { text-align: left; }
td.long { white-space: normal; text-align: left; min-width: 14em; max-width: 30em; overflow-wrap: anywhere; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: bottom; text-align: left; font-size: 12px; color: #555; padding-top: 4px; white-space: normal; }
.chart { margin: 1em 0; width: 100%; overflow-x: auto; } code { background: #f3f3f3; padding: 0 3px; }
.vega-embed summary { display: none; }
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    for pattern, repl in _INLINE_MD:
        text = pattern.sub(repl, text)
    return text


LONG_CELL = 40  # characters: a longer cell (a skyline configuration) wraps instead of widening its table


_NUMBER_LIKE = re.compile(r"^[\s0-9.,+\-/%x()e]*$")  # 87.7, 89.0/90.0, 8.6e+5, 1,965x, -: right-aligned


def _html_cell(c: Any) -> str:
    text = html.escape(str(c))
    cls = " long" if len(str(c)) > LONG_CELL else "" if _NUMBER_LIKE.match(str(c)) else " text"
    cls = f' class="{cls.strip()}"' if cls else ""
    return f"<td{cls}><b>{text}</b></td>" if isinstance(c, Bold) else f"<td{cls}>{text}</td>"


def render_html(blocks: list, title: str) -> str:
    """A standalone page: the Vega/Vega-Lite/vega-embed bundle is inlined once, so it renders offline."""
    body, scripts = [], []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b.columns)
            rows = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in b.rows)
            cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
            body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Chart):
            div = f"vis_{slug(b.name)}"
            body.append(f'<div class="chart" id="{div}" role="img" aria-label="{html.escape(b.alt_text)}"></div>')
            spec = json.dumps(b.spec).replace("</", "<\\/")
            scripts.append(
                f"vegaEmbed('#{div}', {spec}, {{mode: 'vega-lite', renderer: 'svg', actions: false}})"
                ".catch(console.error);"
            )
    bundle = _vega_bundle() if scripts else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n"
        + (f'<script type="text/javascript">\n{bundle}\n</script>\n' if bundle else "")
        + "</head>\n<body>\n"
        + "\n".join(body)
        + ('\n<script type="text/javascript">\n' + "\n".join(scripts) + "\n</script>" if scripts else "")
        + "\n</body>\n</html>\n"
    )


def _vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one script, from vl-convert (no network), matching Altair's Vega-Lite."""
    # vl-convert and altair are imported here: they are heavy, and only a report with charts needs them
    import vl_convert as vlc

    try:
        from altair.utils._importers import vl_version_for_vl_convert

        version = vl_version_for_vl_convert()
    except ImportError:  # older/newer Altair layouts: fall back to vl-convert's default Vega-Lite
        version = None
    bundle = vlc.javascript_bundle(vl_version=version) if version else vlc.javascript_bundle()
    return bundle.replace("</script", "<\\/script")
