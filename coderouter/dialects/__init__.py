"""The dialect hub: one codec per wire dialect, paired through a neutral representation.

`ir` holds the neutral representation, `codec` the protocol each dialect module implements,
`hub` the Bridge that pairs two codecs. Same dialect on both sides never comes here: those bytes
pass through untouched. Each dialect module registers its codec with `hub.register` when it is
imported; the imports below are that registration.
"""

from . import chat, gemini, hub, messages, responses  # noqa: F401
