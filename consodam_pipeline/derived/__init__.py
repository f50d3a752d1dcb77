"""What the edition graph computes from the two systems' records, column-wise: publication periods, the rights
matrix, link history, title packages, the launch plan, tags and restrictions wanted — frames in, frames out,
no I/O — with a readable one-at-a-time reference beside each fast computation (`*_reference`)."""
