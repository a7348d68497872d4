"""SQL sources: dialects, validated and quoted identifiers, keyset page queries, fetching."""
