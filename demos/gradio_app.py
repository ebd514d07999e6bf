"""Start the sam3-agent chat demo in the browser (the same as ``sam3-agent demo``).

    python demos/gradio_app.py --checkpoint ./sam3 --llm-base-url http://localhost:8000/v1 --llm-model MODEL

Every flag of ``sam3-agent demo --help`` works here too.
"""

import typer

from sam3_agent.demo.command import demo

if __name__ == "__main__":
    typer.run(demo)
