"""Build the installable QGIS plugin zip (``make qgis-plugin``), and keep its translations.

    python qgis_plugin/build.py [--out build/qgis-plugin]   # → sentinelle_processes.zip
    python qgis_plugin/build.py --update-ts                   # new tr() texts → i18n/*.ts

The plugin's own texts are French in the code (``tr("…")``); ``i18n/sentinelle_processes_en.ts``
holds their English, ``…_fr.ts`` the identity (so that both languages ship a ``.qm``).  The
``.qm`` files are compiled here with Qt's ``lrelease`` (Debian ``qttools5-dev-tools``), never
committed.  Standard library only: it runs with any Python 3.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "sentinelle_processes"
I18N = PLUGIN / "i18n"
CONTEXT = "SentinelleProcesses"
LANGUAGES = ("fr", "en")
LRELEASE = ("lrelease", "lrelease-qt5", "/usr/lib/qt5/bin/lrelease",
            "/usr/lib/x86_64-linux-gnu/qt5/bin/lrelease")
REQUIRED = ("metadata.txt", "__init__.py", "LICENSE", "icon.png")


def messages() -> list[str]:
    """Every literal passed to ``tr()`` in the plugin's Python files."""
    found = set()
    for path in sorted(PLUGIN.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tr" \
                    and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return sorted(found)


def read_ts(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    root = ET.parse(path).getroot()
    return {m.findtext("source"): m.findtext("translation") or ""
            for m in root.iter("message") if m.findtext("source")}


def update_ts() -> None:
    """Write ``i18n/*.ts`` with every current text, keeping the translations already made."""
    I18N.mkdir(exist_ok=True)
    texts = messages()
    for lang in LANGUAGES:
        path = I18N / f"sentinelle_processes_{lang}.ts"
        known = read_ts(path)
        root = ET.Element("TS", version="2.1", language=f"{lang}_{'FR' if lang == 'fr' else 'GB'}",
                          sourcelanguage="fr_FR")
        context = ET.SubElement(root, "context")
        ET.SubElement(context, "name").text = CONTEXT
        for source in texts:
            message = ET.SubElement(context, "message")
            ET.SubElement(message, "source").text = source
            translation = source if lang == "fr" else known.get(source, "")
            element = ET.SubElement(message, "translation")
            element.text = translation
            if not translation:
                element.set("type", "unfinished")
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n' + body + "\n",
                        encoding="utf-8")
        missing = [t for t in texts if lang != "fr" and not known.get(t)]
        if missing:
            print(f"{path.name}: {len(missing)} text(s) to translate", file=sys.stderr)


def lrelease() -> str:
    for candidate in LRELEASE:
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit("lrelease not found: install Debian's qttools5-dev-tools "
                     "(apt-get install qttools5-dev-tools) to compile the translations")


def build(out: Path) -> Path:
    """``out/sentinelle_processes.zip``: the plugin folder, compiled translations, no caches."""
    out.mkdir(parents=True, exist_ok=True)
    missing = [name for name in REQUIRED if not (PLUGIN / name).exists()]
    if missing:
        raise SystemExit(f"the plugin lacks {', '.join(missing)}")
    tool = lrelease()
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / PLUGIN.name
        shutil.copytree(PLUGIN, stage, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "*.qm", ".*"))
        for ts in sorted((stage / "i18n").glob("*.ts")):
            subprocess.run([tool, "-silent", str(ts), "-qm", str(ts.with_suffix(".qm"))],
                           check=True)
        archive = out / f"{PLUGIN.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(stage.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(stage.parent).as_posix())
    return archive


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "build" / "qgis-plugin")
    parser.add_argument("--update-ts", action="store_true",
                        help="refresh i18n/*.ts from the tr() texts instead of building")
    args = parser.parse_args(argv)
    if args.update_ts:
        update_ts()
        return 0
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
