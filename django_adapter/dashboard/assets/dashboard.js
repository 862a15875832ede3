// Drag and drop onto the upload page: an enhancement of the plain file input,
// which works without this script.  Dropped files become the input's files, then
// the form is sent as if chosen with the input.
(function () {
  "use strict";
  var drop = document.getElementById("drop");
  var input = document.getElementById("id_bundles");
  var form = document.getElementById("upload-form");
  if (!drop || !input || !form || typeof DataTransfer === "undefined") { return; }
  document.getElementById("drop-hint").hidden = false;
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) {
      event.preventDefault();
      drop.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) { return; }
    input.files = files;
    form.requestSubmit ? form.requestSubmit() : form.submit();
  });
}());
