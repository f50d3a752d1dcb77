"""Pure domain code: ISBNs, ONIX code lists, territories. No I/O lives here."""
