"""The dialect hub: one codec per wire dialect, paired through a neutral representation.

`ir` holds the neutral representation, `codec` the protocol each dialect module implements.
Same dialect on both sides never comes here: those bytes pass through untouched.
"""
