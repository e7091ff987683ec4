"""The web demo (`vqscore demo`, the optional `demo` extra): a Streamlit page to score a recording, see where its
quality drops, enhance it with an ensemble and compare the outputs. `analysis` holds the computations (no UI),
`plots` the figures, `examples` the synthesised example clips, `app` the page, `command` the CLI subcommand."""
