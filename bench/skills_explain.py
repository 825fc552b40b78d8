"""The plans of the listing pages on a seeded database, for docs/performance.md.

    .venv/bin/python bench/skills_explain.py --database-url postgresql://.../db [--generic]

Each page's one statement is explained with ANALYZE and BUFFERS, as its first executions run it
(the values known to the planner), or with --generic as a statement prepared once settles on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skillswap.skills.browse import BrowseQuery, explain_page

PAGES = {
    "a category and its children, newest first, max_price=150": {
        "category": "parent",
        "max_price": 150,
    },
    "one category, cheapest first": {"category": "leaf", "ordering": "price"},
    "search 'teaching' (a common word), max_price=150": {"search": "teaching", "max_price": 150},
    "search 'calligraphy' (a rarer word)": {"search": "calligraphy"},
    "search 'الغيتار' (Arabic, with the article)": {"search": "الغيتار"},
}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--generic", action="store_true")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)
    from skillswap.bootstrap import bootstrap
    from skillswap.settings import Settings

    deps = await bootstrap(Settings.from_env())
    try:
        async with deps.db.autocommit() as driver:
            parent = await driver.fetchval(
                "SELECT id FROM skill_categories WHERE slug = 'programming'"
            )
            leaf = await driver.fetchval("SELECT id FROM skill_categories WHERE slug = 'guitar'")
            skills = await driver.fetchval("SELECT count(*) FROM skills")
        print(f"{skills:,} skills\n")
        for title, fields in PAGES.items():
            if "category" in fields:
                fields = {**fields, "category": parent if fields["category"] == "parent" else leaf}
            query = BrowseQuery(**fields)  # type: ignore[arg-type]
            for _ in range(2):  # the second run is the one shown (warm cache)
                plan = await explain_page(deps, query, generic=args.generic)
            print(f"### {title}\n\n```")
            print("\n".join(plan))
            print("```\n")
    finally:
        await deps.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
