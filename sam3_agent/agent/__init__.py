"""The agent: LLM clients, tools, the mask store and the loop. Submodules are imported on demand."""
