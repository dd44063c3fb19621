# lunorad itself as an image, FROM scratch so it builds with no registry:
# `make build-static` first produces bin/lunorad-static (CGO_ENABLED=0).
FROM scratch
COPY bin/lunorad-static /lunorad
ENTRYPOINT ["/lunorad"]
CMD ["up"]
