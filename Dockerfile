FROM python:3.11-slim
# Pango and a font for WeasyPrint's report PDFs.
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS}"
EXPOSE 5001
CMD ["workbench", "up", "--host", "0.0.0.0"]
