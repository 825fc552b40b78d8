"""The skills marketplace: categories, listings, images, bilingual search and browsing.

Modules: `text` (Arabic normalisation, tags), `search` (PostgreSQL tsvector / SQLite FTS5),
`queries` (lean reads and the JSON shape), `listings` (create, change, delete),
`browse` (filters, orderings, pages), `categories`, `images`, `cache` (anonymous read cache),
`seed` (demo data).
"""
