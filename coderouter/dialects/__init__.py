"""The wire dialects: one package each (chat, messages, responses, gemini), paired through a
neutral representation.

`ir` holds the neutral representation, `codec` the protocol each dialect's codec implements,
`dialect` the facts the request path reads without translating, `registry` the one table of
every dialect, `hub` the Bridge that pairs two codecs, `framing` the SSE framing. Same dialect
on both sides never comes here: those bytes pass through untouched.
"""
