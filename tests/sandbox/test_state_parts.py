"""EmulatorState is made of parts by concern; its forwarding table must name only what each part has."""

from sandbox.state import EmulatorState, _On


def test_every_forwarded_name_lives_on_its_part() -> None:
    state = EmulatorState(update_id_base=1)
    forwarded = {name: via for name, via in vars(EmulatorState).items() if isinstance(via, _On)}
    assert len(forwarded) > 70
    for name, via in forwarded.items():
        assert hasattr(getattr(state, via.part), name), f"EmulatorState.{name}: no {name} on {via.part}"


def test_writes_reach_the_owning_part_and_reset_rebuilds_the_parts() -> None:
    state = EmulatorState(update_id_base=1)
    state.allowed_updates = ["message"]
    state.polling_generation += 1
    assert (state.allowed_updates, state.polling_generation) == (["message"], 1)
    state.add_user(1001, "Ann")
    rec, _ = state.user_send_text(1001, "hi")
    assert rec is not None and state.queue == [rec]

    bot, revision = state.bot, state.revision
    state.reset()
    assert state.bot is bot and state.revision == revision + 1
    assert (state.allowed_updates, state.polling_generation, state.users, state.queue) == (None, 0, {}, [])
    state.add_user(1001, "Ann")  # the rebuilt parts are wired to each other
    rec, msg = state.user_send_text(1001, "again")
    assert rec is not None and state.get_message(1001, msg.message_id) is msg
