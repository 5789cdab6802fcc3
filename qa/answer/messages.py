"""What the program says beside its answers, in one place for the CLI and the API (the chat
page, web/static/app.js, shows the API's `message`)."""

NO_ANSWER_MESSAGE = "I couldn't find that in the articles."
UNSURE_MESSAGE = "I'm not sure. The best candidates, with their sources:"
NEWEST_FIRST_MESSAGE = "The newest article first: the question asks about the present."
