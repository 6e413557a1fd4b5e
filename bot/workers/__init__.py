"""What runs beside the updates, each on the one loop of `base.Sweep`: the notification relay
(`relay` and its parts `relay_*`), the case timers (`timers`), the desk's idle clock (`desk_idle`), the refund
worker (`refunds`) and the housekeeping chores (`housekeeping`)."""
