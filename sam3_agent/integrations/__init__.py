"""sam3-agent as a tool inside other agent frameworks.

- ``service``: ``Sam3Service`` (segment / count / ask on images named by reference) behind every adapter;
  ``image_refs.ImageResolver`` reads paths only inside an allowed folder, or data: URLs / base64.
- ``langchain_tools``: ``Sam3SegmentTool``, ``Sam3CountTool``, ``Sam3AgentTool`` (LangChain ``BaseTool``).
- ``langchain_llm``: ``LangChainChatModel``, any LangChain chat model with tool calling as the agent's LLM.
- ``openai_tools``: Chat Completions / Responses tool schemas and ``ToolExecutor`` for your own loop.
- ``mcp_server``: the MCP server behind ``sam3-agent mcp`` (stdio or streamable HTTP).

Import the submodule you need; each imports its framework (langchain-core, mcp) itself, so this package
stays importable without the optional extras.
"""
