"""Sessions: the connection actor, the live session a turn belongs to, and turns.

Lifetimes (each owns its tasks in one place):
- the app: the `TaskSupervisor` owns turns and progress flushes;
- the connection: `ConnectionActor` runs reader and writer in one task group;
- the turn: one task per reply, which stores itself however it ends.
"""
