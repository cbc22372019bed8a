"""Tool calls per agent: a token bucket per agent id (``SCS_TOOL_RATE`` per second, ``SCS_TOOL_BURST`` at once).

Kept in this process's memory (``realtime.ratelimit.Limits``): with several sidecars, each allows an agent
its own rate.
"""

from realtime.ratelimit import Limits

tool_limits = Limits("SCS_TOOL_RATE", "SCS_TOOL_BURST")
