// "Copy" buttons beside read-only fields (progressive: without script the field can be selected
// and copied by hand, and the buttons stay hidden).
document.querySelectorAll("button.copy").forEach(function (button) {
  var field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(function () {
      button.textContent = "Copied";
    });
  });
});
